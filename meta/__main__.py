from meta.cli import main

raise SystemExit(main())
