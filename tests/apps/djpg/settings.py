"""Settings from the environment: PG_PORT and PG_HOST (127.0.0.1) of the test's Postgres."""
import os

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djpg.urls"
INSTALLED_APPS = ["django.contrib.contenttypes", "djpg"]
USE_TZ = True
TIME_ZONE = "America/Chicago"     # Django sets TZ and calls tzset(): the log must not follow
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": "postgres",
        "HOST": os.environ.get("PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("PG_PORT", "5432"),
        "CONN_MAX_AGE": 600,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
