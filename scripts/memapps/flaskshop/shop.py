"""The shop blueprint: home, product list (paged), product, category, search, cart."""
from flask import Blueprint, render_template, request

from . import db

bp = Blueprint("shop", __name__)
PRODUCTS = """SELECT p.*, c.name AS category, c.slug AS category_slug,
              AVG(r.rating) AS rating, COUNT(r.id) AS n_reviews
              FROM products p JOIN categories c ON c.id = p.category_id
              LEFT JOIN reviews r ON r.product_id = p.id"""


@bp.route("/")
def home():
    featured = db.rows(PRODUCTS + " GROUP BY p.id ORDER BY rating DESC LIMIT 8")
    cats = db.rows("SELECT c.*, COUNT(p.id) AS n FROM categories c LEFT JOIN products p ON p.category_id = c.id "
                   "GROUP BY c.id ORDER BY c.name")
    reviews = db.rows("SELECT r.*, p.name AS product FROM reviews r JOIN products p ON p.id = r.product_id "
                      "ORDER BY r.id DESC LIMIT 6")
    return render_template("shop/home.html", featured=featured, categories=cats, reviews=reviews)


@bp.route("/products")
def products():
    page = request.args.get("page", 1, type=int)
    items = db.rows(PRODUCTS + " GROUP BY p.id ORDER BY p.name LIMIT 20 OFFSET ?", (page - 1) * 20)
    return render_template("shop/products.html", products=items, page=page)


@bp.route("/product/<int:pid>")
def product(pid):
    item = db.one(PRODUCTS + " WHERE p.id = ? GROUP BY p.id", pid)
    reviews = db.rows("SELECT * FROM reviews WHERE product_id = ? ORDER BY id DESC", pid)
    related = db.rows(PRODUCTS + " WHERE p.category_id = ? AND p.id != ? GROUP BY p.id LIMIT 4",
                      item["category_id"], pid)
    return render_template("shop/product.html", product=item, reviews=reviews, related=related)


@bp.route("/category/<slug>")
def category(slug):
    cat = db.one("SELECT * FROM categories WHERE slug = ?", slug)
    items = db.rows(PRODUCTS + " WHERE p.category_id = ? GROUP BY p.id ORDER BY p.name", cat["id"])
    return render_template("shop/category.html", category=cat, products=items)


@bp.route("/search")
def search():
    q = request.args.get("q", "")
    like = "%" + q + "%"
    items = db.rows(PRODUCTS + " WHERE p.name LIKE ? OR p.description LIKE ? GROUP BY p.id LIMIT 30", like, like)
    return render_template("shop/search.html", q=q, products=items)


@bp.route("/cart")
def cart():
    lines = db.rows("SELECT p.id, p.name, p.price_cents, oi.qty FROM order_items oi "
                    "JOIN products p ON p.id = oi.product_id WHERE oi.order_id = 3")
    total = sum(line["price_cents"] * line["qty"] for line in lines)
    return render_template("shop/cart.html", lines=lines, total=total)
