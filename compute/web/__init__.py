"""Pages for people: the front page at ``/`` (HTML for browsers, a JSON index for programs).

``negotiation`` decides who gets HTML, ``ask`` turns the front page's form
into a result through the API's own validation and service, ``views``
renders. This layer sits above ``compute.api`` (it reuses its serializer
and throttle, so a person and a program get the same answers and limits).
"""
