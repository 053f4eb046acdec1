"""The Flask measurement shop (scripts/memory.py): four blueprints (shop, blog, account,
api), Jinja templates with inheritance and macros, JSON views, on a stdlib sqlite3 file in
$MEMAPP_DIR that flaskshop.seed creates and fills."""
from flask import Flask


def create_app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "memory-measurement-only-not-a-secret"
    from . import account, api, blog, db, shop
    db.init_app(app)
    app.register_blueprint(shop.bp)
    app.register_blueprint(blog.bp, url_prefix="/blog")
    app.register_blueprint(account.bp, url_prefix="/account")
    app.register_blueprint(api.bp, url_prefix="/api")
    app.add_url_rule("/about", "about", account.about)
    app.jinja_env.filters["money"] = lambda cents: "$%d.%02d" % divmod(int(cents), 100)
    return app
