"""ROS-free runtime helpers used by the ROS adapters (frame sampling, mailboxes, stats windows).

Kept free of rclpy so the timing logic can be tested, and reused, without a middleware.
"""
