"""Create and fill the Flask shop's database in $MEMAPP_DIR: `python -m flaskshop.seed`
(from scripts/memapps). Deterministic: 8 categories, 120 products, 40 posts with tags,
200 orders with items, 300 reviews."""
import os
import random
import sqlite3
import sys

SCHEMA = """
CREATE TABLE categories (id INTEGER PRIMARY KEY, slug TEXT UNIQUE, name TEXT, description TEXT);
CREATE TABLE products (id INTEGER PRIMARY KEY, category_id INTEGER REFERENCES categories(id),
                       name TEXT, price_cents INTEGER, stock INTEGER, description TEXT);
CREATE TABLE reviews (id INTEGER PRIMARY KEY, product_id INTEGER REFERENCES products(id),
                      author TEXT, rating INTEGER, body TEXT);
CREATE TABLE posts (id INTEGER PRIMARY KEY, slug TEXT UNIQUE, title TEXT, body TEXT, created TEXT);
CREATE TABLE tags (post_id INTEGER REFERENCES posts(id), tag TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, created TEXT, status TEXT);
CREATE TABLE order_items (order_id INTEGER REFERENCES orders(id), product_id INTEGER REFERENCES products(id),
                          qty INTEGER, price_cents INTEGER);
CREATE INDEX products_category ON products(category_id);
CREATE INDEX reviews_product ON reviews(product_id);
CREATE INDEX items_order ON order_items(order_id);
CREATE INDEX tags_tag ON tags(tag);
"""
WORDS = ("oak walnut steel linen wool copper glass cedar amber slate ivory indigo canvas "
         "marble bamboo leather cotton granite velvet brass").split()
TAGS = ["python", "wsgi", "memory", "fork", "sqlite", "jinja"]


def text(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def fill(conn, rng):
    conn.executemany("INSERT INTO categories VALUES (?, ?, ?, ?)",
                     [(i + 1, w, w.title() + " goods", text(rng, 20)) for i, w in enumerate(WORDS[:8])])
    conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?, ?)",
                     [(i, i % 8 + 1, "%s %s %d" % (rng.choice(WORDS), rng.choice(WORDS), i),
                       rng.randint(300, 20000), rng.randint(0, 40), text(rng, 40)) for i in range(1, 121)])
    conn.executemany("INSERT INTO reviews VALUES (?, ?, ?, ?, ?)",
                     [(i, rng.randint(1, 120), rng.choice(WORDS).title(), rng.randint(1, 5), text(rng, 25))
                      for i in range(1, 301)])
    conn.executemany("INSERT INTO posts VALUES (?, ?, ?, ?, ?)",
                     [(i, "post-%d" % i, text(rng, 6), "\n\n".join(text(rng, 60) for _ in range(4)),
                       "2024-%02d-%02d" % (i % 12 + 1, i % 28 + 1)) for i in range(1, 41)])
    conn.executemany("INSERT INTO tags VALUES (?, ?)",
                     [(i, t) for i in range(1, 41) for t in rng.sample(TAGS, 2)])
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)",
                     [(i, "%s %s" % (rng.choice(WORDS).title(), rng.choice(WORDS).title()),
                       "2024-%02d-%02d" % (i % 12 + 1, i % 28 + 1), rng.choice(["new", "paid", "shipped"]))
                      for i in range(1, 201)])
    conn.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?)",
                     [(o, rng.randint(1, 120), rng.randint(1, 4), rng.randint(300, 20000))
                      for o in range(1, 201) for _ in range(rng.randint(1, 5))])


def main():
    if "MEMAPP_DIR" not in os.environ:
        sys.exit("set MEMAPP_DIR to the folder for the database (memory.py makes a temporary one)")
    conn = sqlite3.connect(os.path.join(os.environ["MEMAPP_DIR"], "flaskshop.sqlite3"))
    with conn:
        conn.executescript(SCHEMA)
        fill(conn, random.Random(28))
    conn.close()


if __name__ == "__main__":
    main()
