kC02qeEw/7XxdlnV2u+DvBBa/5ywDfWxAKamhBrH6Rn/OrXjCFw0LR2a9FUGIhAFoUj/j0/4ny8YajAS/F3ZBA==
key-id: 8e94e7898e2aa6e8
