from rnngrad.cli import main

raise SystemExit(main())
