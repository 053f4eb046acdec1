"""What scripts/memory.py needs to know about each measurement app: the WSGI target, the
command that makes its database, the package it needs, the URLs it cycles and the heavy
page it times on a new worker. Paths are relative to this folder (put on PYTHONPATH)."""

DJANGO_URLS = [
    "/", "/categories/", "/category/oak-goods/", "/category/linen-goods/?page=2",
    "/product/7/", "/product/42/", "/orders/", "/order/17/", "/customers/", "/search/?q=oak",
    "/api/products/", "/api/product/42/", "/api/orders/", "/api/categories/", "/api/stats/",
    "/admin/", "/admin/shop/product/", "/admin/shop/product/42/change/", "/admin/shop/order/",
    "/admin/shop/order/17/change/", "/admin/shop/customer/?q=a", "/admin/shop/review/",
    "/admin/auth/user/",
]

FLASK_URLS = [
    "/", "/products", "/products?page=2", "/product/7", "/product/42", "/category/oak",
    "/search?q=oak", "/cart", "/blog/", "/blog/post-3", "/blog/post-11", "/blog/tag/python",
    "/blog/archive", "/account/orders", "/account/order/17", "/about",
    "/api/products", "/api/products/42", "/api/categories", "/api/posts", "/api/stats",
]

APPS = {
    "django": {
        "wsgi": "djshop.wsgi:application",
        "seed": ["-m", "djshop.seed"],
        "needs": "django",
        "cookie_file": "admin-session",      # written by the seed: the admin's session key
        "cookie_name": "sessionid",
        "urls": DJANGO_URLS,
        "heavy": "/admin/shop/order/17/change/",
    },
    "flask": {
        "wsgi": "flaskshop.wsgi:app",
        "seed": ["-m", "flaskshop.seed"],
        "needs": "flask",
        "cookie_file": None,
        "cookie_name": None,
        "urls": FLASK_URLS,
        "heavy": "/",
    },
}
