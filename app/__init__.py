"""woobird: books paid WooCommerce orders into Moneybird as paid invoices, exactly once, to the cent."""

__version__ = "0.1.0"
