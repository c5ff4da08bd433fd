"""One model contract for every model kind (emotion, action, compiled): wrap, pyfunc, resolve a URI, ship."""
