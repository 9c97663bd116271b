from credrot.cli import main

raise SystemExit(main())
