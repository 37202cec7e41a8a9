"""Framework glue: Django, Flask, WSGI and ASGI. Each module imports its framework lazily
from the matching extra (``pip install 'mailspool[django]'``, ``'mailspool[flask]'``);
the WSGI and ASGI middleware need nothing beyond the standard library."""
