"""The /admin dashboard: include `app.admin.routes.router` in the web app."""
