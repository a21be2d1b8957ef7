"""The domain: pure Python, no Django. The maths (``maths``), what a client asked for
(``query``), the text of a result (``results``), what it costs (``cost``) and the bytes
a result is stored and served as (``payload``)."""
