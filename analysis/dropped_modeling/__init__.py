"""Remote code shipped into dropped-model repos (imports only torch and transformers)."""
