"""The parts the methods share (the methods themselves are ``algorithms/<method>.py``).

* ``jax_learner``: JAXRL2 networks (D4PG encoder, Q/value/policy heads), augmentation, and the
  ``JaxLearner`` base of the model-free learners (BC, SAC, CQL, IQL).
* ``torch_parts``: PyTorch pieces of the world-model agents (DreamerV2's optimiser, MLPs, the
  truncated-normal actor, lambda-returns, checkpoint helpers, device options).
* ``world_model``: the RSSM world model (DreamerV2, MOTO, LOMPO, COMBO).
* ``world_model_agent``: ``WorldModelAgent``, the base class of those agents (seeded construction of the
  world model and the method's heads, optimisers, generator, checkpoint plumbing).
* ``latent_sac``: LOMPO/COMBO's latent replay buffers, disagreement penalties and SAC on latents.
"""
