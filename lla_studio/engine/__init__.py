"""The only bridge between core and GUI: QObject workers on QThreads, emitting frozen snapshots."""
