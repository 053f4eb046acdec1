"""Create and fill the shop's database in $MEMAPP_DIR: `python -m djshop.seed` (from
scripts/memapps). Makes the tables (`migrate --run-syncdb`), seeds a deterministic shop
(8 categories, 120 products, 60 customers, 200 orders, 300 reviews), an admin superuser,
and a logged-in session for it whose key it writes to $MEMAPP_DIR/admin-session: the
measurement client sends it as the `sessionid` cookie, so admin pages are served as to a
signed-in staff user (a real session row read on each request, no login round trip and
no test-only middleware)."""
import datetime
import os
import random
import sys
from decimal import Decimal

import django

WORDS = ("oak walnut steel linen wool copper glass cedar amber slate ivory indigo canvas "
         "marble bamboo leather cotton granite velvet brass").split()
CITIES = ["Lyon", "Oslo", "Porto", "Graz", "Turin", "Ghent", "Bergen", "Krakow"]


def text(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def seed(rng):
    from djshop.shop.models import Category, Customer, Order, OrderItem, Product, Review
    t0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    cats = Category.objects.bulk_create(
        Category(name="%s goods" % w.title(), slug="%s-goods" % w, description=text(rng, 20)) for w in WORDS[:8])
    products = Product.objects.bulk_create(
        Product(category=cats[i % 8], name="%s %s %d" % (rng.choice(WORDS), rng.choice(WORDS), i),
                slug="product-%d" % i, price=Decimal(rng.randint(300, 20000)) / 100, stock=rng.randint(0, 40),
                description=text(rng, 40), created=t0 + i * day) for i in range(120))
    people = Customer.objects.bulk_create(
        Customer(name="%s %s" % (rng.choice(WORDS).title(), rng.choice(WORDS).title()),
                 email="c%d@example.com" % i, city=rng.choice(CITIES), joined=t0 + i * day) for i in range(60))
    orders = Order.objects.bulk_create(
        Order(customer=rng.choice(people), created=t0 + i * day / 2,
              status=rng.choice(["new", "paid", "shipped", "cancelled"])) for i in range(200))
    items = []
    for o in orders:
        for p in rng.sample(products, rng.randint(1, 5)):
            items.append(OrderItem(order=o, product=p, quantity=rng.randint(1, 4), unit_price=p.price))
    OrderItem.objects.bulk_create(items)
    Review.objects.bulk_create(
        Review(product=rng.choice(products), customer=rng.choice(people), rating=rng.randint(1, 5),
               body=text(rng, 30), created=t0 + i * day / 3) for i in range(300))


def admin_session():
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    user = User.objects.create_superuser("admin", "admin@example.com", "memory-measurement")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


def main():
    if "MEMAPP_DIR" not in os.environ:
        sys.exit("set MEMAPP_DIR to the folder for the database (memory.py makes a temporary one)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djshop.settings")
    django.setup()
    from django.core.management import call_command
    call_command("migrate", run_syncdb=True, verbosity=0)
    seed(random.Random(28))
    key = admin_session()
    with open(os.path.join(os.environ["MEMAPP_DIR"], "admin-session"), "w") as f:
        f.write(key)


if __name__ == "__main__":
    main()
