"""The REST API (Django REST framework): viewsets, serializers, throttling, schema, URLs."""
