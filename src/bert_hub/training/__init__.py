"""The parts the Trainer's loop (:mod:`bert_hub.trainer`) calls, one concept each:
``arguments`` (the settings), ``batches`` (the model contract), ``data`` (the loaders),
``precision`` (autocast and loss scaling), ``optimizer_step`` (optimizer, schedule, clipping,
CPU offload), ``checkpointing`` (checkpoint folders and RNG state) and ``logging_sinks``
(metrics.jsonl, TensorBoard, the plot, the progress bar). The strategies (one device,
DataParallel, DDP) are in :mod:`bert_hub.distributed`. Nothing here imports the models."""
