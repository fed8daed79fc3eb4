"""The bundled PyTorch sample: its model code (a plain file a config names with
``model.torch``, as a user's would be) and its training (``artq samples train NAME``)."""
