"""Training: the trainer, recipes, distillation from a teacher, run folders and carrying them to another machine, publishing a run as a tag, and training throughput."""
