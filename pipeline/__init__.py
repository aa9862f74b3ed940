"""camserver: a live webcam stream server built as a pipeline of small processes linked by ZeroMQ."""
