"""Storage: the contract (records, repository interfaces), the Database, and one package per backend."""
