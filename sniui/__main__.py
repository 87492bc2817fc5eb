from sniui.cli import main

raise SystemExit(main())
