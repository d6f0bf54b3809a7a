"""OCPP 1.6J: the handler class and the command translation for stations speaking 1.6."""
