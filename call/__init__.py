"""The friend call: WebRTC through aiortc, signalling over websockets."""
