cFM+VFpIi0tpiQNiq5ISbqiq6HSo6gXYNBkLe5oK+D++CyuMNL3lL46+wKJhbXw5cvDTbZh4a/VQ+QepJ+v6Bg==
key-id: 8e94e7898e2aa6e8
