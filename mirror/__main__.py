from mirror.app.cli import main

raise SystemExit(main())
