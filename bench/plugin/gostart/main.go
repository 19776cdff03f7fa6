// Command gostart only exits: the least any Go program pays to start (the bench's floor for a Go plugin's process start).
package main

func main() {}
