"""``python -m lgfn``: the ``lgfn`` command; how torchrun, srun and Lightning's ddp launcher start each rank."""

from lgfn.cli.main import main

raise SystemExit(main())
