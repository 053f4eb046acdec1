"""The account blueprint (orders of a customer) and the about page."""
from flask import Blueprint, render_template

from . import db

bp = Blueprint("account", __name__)


@bp.route("/orders")
def orders():
    rows = db.rows("SELECT o.*, SUM(i.qty * i.price_cents) AS total, COUNT(i.product_id) AS n_items "
                   "FROM orders o JOIN order_items i ON i.order_id = o.id GROUP BY o.id ORDER BY o.created DESC LIMIT 40")
    return render_template("account/orders.html", orders=rows)


@bp.route("/order/<int:oid>")
def order(oid):
    row = db.one("SELECT * FROM orders WHERE id = ?", oid)
    items = db.rows("SELECT i.*, p.name FROM order_items i JOIN products p ON p.id = i.product_id WHERE order_id = ?", oid)
    return render_template("account/order.html", order=row, items=items)


def about():
    counts = {t: db.one("SELECT COUNT(*) FROM %s" % t)[0] for t in ("products", "posts", "orders")}
    return render_template("about.html", counts=counts)
