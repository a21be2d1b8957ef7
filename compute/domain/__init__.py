"""The domain: pure Python, no Django. The maths (``maths``), what a client asked for
(``query``) and the bytes a result is stored and served as (``payload``)."""
