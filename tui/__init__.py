"""artq's Textual workbench. Never imports TensorFlow: jobs run in ``engine.worker``."""
