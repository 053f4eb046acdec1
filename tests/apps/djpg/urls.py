"""`/`: this worker's pid and its database connection's backend pid, each from a query."""
import os

from django.db import connection
from django.http import JsonResponse
from django.urls import path

from .models import Note


def whoami(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    return JsonResponse({"worker": os.getpid(), "backend": backend, "notes": Note.objects.count()})


urlpatterns = [path("", whoami)]
