"""Why files changed: explanations by signed packages (`engine.explain`), with the evidence each
rests on (`model`), dpkg's index (`dpkg`), the signed archive (`archive`), the keyrings kept on
the vault (`keyring`), the pure judgement (`judge`) and generated files (`generated`)."""
