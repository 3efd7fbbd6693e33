from scn.cli import main

raise SystemExit(main())
