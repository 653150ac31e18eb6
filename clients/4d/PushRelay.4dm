// PushRelay: MobileAppServer.PushNotification's send, sendAll and open, as one HTTP Request each
// to a pushrelay server. Copy this file into your project's Project/Sources/Classes/ folder.
//
//   $push:=cs.PushRelay.new("https://push.example.com"; $apiKey; "myappname")
//   $response:=$push.send($notification; "test@4d.com")
//
// The notification and the recipients go as 4D has them (an e-mail, a token, a collection mixing
// both, or New object("mails"; ...; "deviceTokens"; ...)). The answer is the component's
// {success; warnings; errors}, plus deliveries: one object per device.
// The API key needs the "send" scope; keep it out of the code (a settings file, Get database parameter...).

property baseURL : Text
property apiKey : Text
property app : Text
property wait : Integer

Class constructor($baseURL : Text; $apiKey : Text; $app : Text)
	This.baseURL:=$baseURL
	This.apiKey:=$apiKey
	This.app:=$app
	This.wait:=30  // seconds pushrelay waits for the outcome before it answers

Function send($notification : Object; $recipients : Variant) : Object
	return This._post(New object("app"; This.app; "notification"; $notification; "recipients"; $recipients))

Function sendAll($notification : Object) : Object
	return This._post(New object("app"; This.app; "notification"; $notification; "recipients"; New object("all"; True)))

Function open($target : Variant; $notification : Object; $recipients : Variant) : Object
	// as the component: userInfo gets dataClass, and for a record entity.primaryKey and dataSynchro
	var $n : Object
	$n:=OB Copy($notification)
	If ($n.userInfo=Null)
		$n.userInfo:=New object
	End if
	Case of
		: (Value type($target)=Is text)
			$n.userInfo.dataClass:=$target
		: (OB Instance of($target; 4D.Entity))
			$n.userInfo.dataClass:=$target.getDataClass().getInfo().name
			$n.userInfo.entity:=New object("primaryKey"; $target.getKey())
			If ($n.userInfo.dataSynchro=Null)
				$n.userInfo.dataSynchro:=True
			End if
		Else  // a dataClass
			$n.userInfo.dataClass:=$target.getInfo().name
	End case
	return This.send($n; $recipients)

Function _post($body : Object) : Object
	var $response : Object
	var $status : Integer
	ARRAY TEXT($names; 2)
	ARRAY TEXT($values; 2)
	$names{1}:="Authorization"
	$values{1}:="Bearer "+This.apiKey
	$names{2}:="Content-Type"
	$values{2}:="application/json"
	$status:=HTTP Request(HTTP POST method; This.baseURL+"/v1/notifications?wait="+String(This.wait); JSON Stringify($body); $response; $names; $values)
	Case of
		: ($status=200) | ($status=202)  // 202: still sending when the wait ended
			return $response
		: ($response#Null) && ($response.error#Null)  // the request was refused: the error names the field
			return New object("success"; False; "warnings"; New collection; "errors"; New collection($response.error.message))
		Else
			return New object("success"; False; "warnings"; New collection; "errors"; New collection("pushrelay answered HTTP "+String($status)))
	End case
