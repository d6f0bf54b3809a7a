"""Billing documents: receipts for charged sessions, invoices, their PDFs and signed links;
drivers' charging history and operators' revenue reports."""
