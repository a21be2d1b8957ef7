"""``python -m mathsite.shared_listener APP``: granian with one shared listening socket."""

from mathsite.shared_listener import main

main()
