"""The shop's URLs: the admin, eight HTML pages and five JSON views."""
from django.contrib import admin
from django.urls import path

from djshop.shop import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", views.home, name="home"),
    path("categories/", views.categories, name="categories"),
    path("category/<slug:slug>/", views.category, name="category"),
    path("product/<int:pk>/", views.product, name="product"),
    path("orders/", views.orders, name="orders"),
    path("order/<int:pk>/", views.order, name="order"),
    path("customers/", views.customers, name="customers"),
    path("search/", views.search, name="search"),
    path("api/products/", views.api_products),
    path("api/product/<int:pk>/", views.api_product),
    path("api/orders/", views.api_orders),
    path("api/categories/", views.api_categories),
    path("api/stats/", views.api_stats),
]
