"""Every shop model in the admin, with the list columns, filters, searches and inlines a
real back office would have (they are what make admin pages heavy to build)."""
from django.contrib import admin

from .models import Category, Customer, Order, OrderItem, Product, Review


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "category", "price", "stock", "created"]
    list_filter = ["category", "created"]
    search_fields = ["name", "description"]
    list_select_related = ["category"]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "city", "joined"]
    search_fields = ["name", "email"]
    list_filter = ["city"]


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    extra = 0
    raw_id_fields = ["product"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "customer", "created", "status"]
    list_filter = ["status", "created"]
    date_hierarchy = "created"
    inlines = [OrderItemInline]
    list_select_related = ["customer"]


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ["product", "customer", "rating", "created"]
    list_filter = ["rating"]
    list_select_related = ["product", "customer"]
