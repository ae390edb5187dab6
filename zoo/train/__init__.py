"""Training: the trainer, recipes, distillation from a teacher, run folders, publishing a run as a tag, and training throughput."""
