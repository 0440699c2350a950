"""graft: graft a pretrained language model onto your domain."""
