"""Model and dataset card templates for the Hub, rendered with huggingface_hub's ModelCard / DatasetCard."""
