"""Generation backends behind one small interface (:class:`collectors.backends.base.Backend`)."""
