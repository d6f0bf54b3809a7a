"""Remote control of stations: commands sent over the bus to the gateway holding the socket."""
