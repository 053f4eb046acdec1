"""The JSON blueprint: products, one product with its reviews, categories, posts, stats."""
from flask import Blueprint, jsonify

from . import db

bp = Blueprint("api", __name__)


@bp.route("/products")
def products():
    rows = db.rows("SELECT p.id, p.name, p.price_cents, p.stock, c.slug AS category FROM products p "
                   "JOIN categories c ON c.id = p.category_id ORDER BY p.id LIMIT 60")
    return jsonify(products=[dict(r) for r in rows])


@bp.route("/products/<int:pid>")
def product(pid):
    row = dict(db.one("SELECT * FROM products WHERE id = ?", pid))
    row["reviews"] = [dict(r) for r in db.rows("SELECT author, rating, body FROM reviews WHERE product_id = ?", pid)]
    return jsonify(row)


@bp.route("/categories")
def categories():
    rows = db.rows("SELECT c.slug, c.name, COUNT(p.id) AS products, AVG(p.price_cents) AS avg_price "
                   "FROM categories c LEFT JOIN products p ON p.category_id = c.id GROUP BY c.id")
    return jsonify(categories=[dict(r) for r in rows])


@bp.route("/posts")
def posts():
    return jsonify(posts=[dict(r) for r in db.rows("SELECT id, slug, title, created FROM posts ORDER BY created")])


@bp.route("/stats")
def stats():
    status = {r["status"]: r["n"] for r in db.rows("SELECT status, COUNT(*) AS n FROM orders GROUP BY status")}
    revenue = db.one("SELECT SUM(qty * price_cents) FROM order_items")[0]
    return jsonify(orders=status, revenue_cents=revenue, rating=db.one("SELECT AVG(rating) FROM reviews")[0])
