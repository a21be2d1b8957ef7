"""``python -m launcher.shared_listener APP``: granian with one shared listening socket."""

from launcher.shared_listener import main

main()
