"""The network a sandbox host sees: seed API, Hugging Face hub, package index, git repositories."""
