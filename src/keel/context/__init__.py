"""Context layer: ground the model in data (retrieval, packing, citations). Empty by default."""
