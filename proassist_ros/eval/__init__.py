"""Evaluation and benchmarks (ROS-free)."""
