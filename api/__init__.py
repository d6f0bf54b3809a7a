"""ChargeNet's API: the GraphQL schema for apps and operators, and the `chargenet` CLI."""
