"""The bundled samples' Keras models: built, trained and given their losses here, beside the
rest of TensorFlow (``artq samples train NAME``; QAT fine-tunes with the same losses). Their
data generators, which need no framework, stay in :mod:`engine.samples`."""
