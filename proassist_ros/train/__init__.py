"""Stage 2 of training (`proassist train`): sequences, NFS, and the LoRA + projector trainer.

``sequence`` turns an episode into samples laid out exactly as the engine feeds the model
(docs/training.md); ``nfs`` thins the silent decision points; ``trainer`` runs the loop under
HF accelerate (one process, torchrun DDP, or a GPU box alike). Stage 1 (the vision tower) and
the frame-feature cache live in ``vision.py`` / ``features.py``.
"""
